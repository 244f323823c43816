"""Graph: the relation graph, one store for every tenant (DESIGN §3).

Owns: ``relation_edges`` in the management database. An edge is only a tenant id, a
relation type, two GUIDs and when it was made: never a name or any other business data.
Every read and write names its tenant, and a caller proves both GUIDs of a new edge are
its tenant's (``services.OwnedIds``) before the edge is written, so one tenant can never
read, make or remove an edge touching another tenant's GUIDs.

Relations in ``services.TREES`` (``reports_to``) form a forest: one target per source and
no cycles, and no chain longer than ``queries.MAX_DEPTH`` edges (what every walk reads); a
new edge is checked with recursive queries while the tenant's graph lock is held, so two
concurrent inserts can never close a cycle together, and an edge whose check cannot see
the end of its chain is refused. Reads walking the graph (chain of command, everyone under
a person, a unit's chart) are ``WITH RECURSIVE`` queries in ``queries``. Messages in: none
(callers are other contexts' services and handlers); out: none.
"""
