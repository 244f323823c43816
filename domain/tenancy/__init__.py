"""Tenancy: tenants, their plot (trial or dedicated database), signup and provisioning.

Owns: tenants, signups, tenant_migrations (management database).
In: ProvisionTenantV1 (command), MigrateTenantDatabaseV1 (command).
Out: TenantProvisionedV2.
"""
