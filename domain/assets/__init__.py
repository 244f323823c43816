"""Assets: every file users keep (images, videos, documents), on S3 or a local folder.

Owns: the storage port (``domain.assets.storage``) and its adapters, which tenant exports
are written through too; the ``assets`` table of each tenant database (an asset per file:
``awaiting_upload | uploaded | processing | ready | rejected | deleted``, what processing
found, its renditions) and ``asset_policies`` in the management database (quota, refused
kinds). Public: ``services`` (uploads, confirm, delete, download links), ``queries``,
``policies``, ``errors``, ``storage``, ``keys``.

Messages: ``ProcessAssetV1`` (command, handled on the ``assets`` pool by
``handlers.process_asset``, under per-tenant admission control) and ``AssetProcessedV1``
(event, out: the owner's notice). Beat: ``tasks.assets.clean_up_assets`` (``cleanup``).
"""
