"""Notifications: what reaches people when something happens, in the app and by email.

Owns: notices (every tenant database); email_deliveries, undeliverable_addresses,
notification_preferences, notification_settings and tenant_branding (management database);
the email templates (``templates/``, rendered by the ``workers.mail_rendering`` adapter).
In: TenantProvisioned (welcome), UserInvited (the invitation email), PurchaseCompleted,
PurchaseFailed, PurchaseRefunded, TenantPromoted, AssetProcessed, TrialEnding,
PublicationPublished; every one goes through ``pipeline.notify`` (event -> recipients ->
notice + email as each person chose). Beat: the daily digest (``digest``).
Out: nothing.
"""
