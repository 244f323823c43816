"""The target metadata of each Alembic environment, shared by env.py and the schema tests."""
from __future__ import annotations

from sqlalchemy import MetaData

from domain.assets import models as assets_models
from domain.billing import models as billing_models
from domain.db.base import ManagementBase, TenantBase
from domain.db.fences import metadata as fences_metadata
from domain.db.migrate import LOCK_KEY  # noqa: F401 - the env scripts' lock
from domain.employment import models as employment_models
from domain.graph import models as graph_models
from domain.iam import models as iam_models
from domain.identity import models as identity_models
from domain.messaging.tables import metadata as messaging_metadata
from domain.notifications import models as notifications_models
from domain.publications import models as publications_models
from domain.purchases import models as purchases_models
from domain.purchases import sandbox as purchases_sandbox
from domain.tenancy import models as tenancy_models
from domain.tenancy import trials as tenancy_trials
from domain.translations import models as translations_models

# Importing a context's models registers its tables on ManagementBase or TenantBase.
MODEL_MODULES = (iam_models, identity_models, notifications_models, tenancy_models,
                 purchases_models, purchases_sandbox, billing_models,
                 employment_models, graph_models,  # employment: TENANT; graph: MANAGEMENT
                 assets_models,  # assets: both (assets in TENANT, asset_policies in MANAGEMENT)
                 tenancy_trials, translations_models,  # trial reminders, overrides: MANAGEMENT
                 publications_models)  # TENANT
MANAGEMENT: list[MetaData] = [ManagementBase.metadata, messaging_metadata]
TENANT: list[MetaData] = [TenantBase.metadata, messaging_metadata, fences_metadata]
