"""Notifications: in-app notices (and, later, email) for events that should reach a person.

Owns: notices (tenant databases).
In: TenantProvisionedV1 (welcome notice).
"""
