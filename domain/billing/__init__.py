"""Billing: the ledger of what each tenant was charged and refunded.

Owns: billing_ledger_entries (management database), one entry per purchase event; the refund
of a free purchase moved no money and is not booked (its charge is, at zero).
In: PurchaseCompletedV1 (a charge), PurchaseRefundedV1 (a refund).
"""
