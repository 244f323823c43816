"""Assets: files users and operators keep on the asset storage (S3 or a local folder).

Owns: the storage port (``domain.assets.storage``) and its adapters; tenant exports are
written through it by tenancy.
"""
