"""Purchases: the product catalogue, purchase requests, and charging them through a payment
gateway (the ``sandbox`` card processor by default).

Owns: products, purchases (management database); the sandbox gateway's own ledger
(sandbox_payment_methods, sandbox_charges, sandbox_refunds, sandbox_attempts), which stands
for an outside card processor and is written on its own connection.
In: ChargePurchaseV1, RefundPurchaseV1 (commands).
Out: PurchaseCompletedV1, PurchaseFailedV1, PurchaseRefundedV1.
"""
