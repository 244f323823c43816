"""IAM: roles and permissions per tenant; the one place that answers "may this user do this".

Owns: roles, memberships (management database).
"""
