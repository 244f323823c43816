"""Billing: the ledger of what each tenant was charged and refunded.

Owns: billing_ledger_entries (management database), one entry per purchase event.
In: PurchaseCompletedV1 (a charge), PurchaseRefundedV1 (a refund).
"""
