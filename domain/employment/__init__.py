"""Employment: the organisation's people and structure.

Owns (tenant databases): employees, job types, org units (a tree) and bulk import jobs
with their per-line problems. Reporting lines and other typed relations between employees
are not stored here but in the relation graph (domain.graph): employment asks the graph,
and proves to it that the GUIDs of a new edge are the tenant's employees.

Public to other contexts: ``queries`` (people of an org unit with or without its
sub-units, everyone, which of some ids exist, people by id or email), ``services``,
``structure``, ``relations``, ``reporting``, ``imports`` and ``errors``.

Messages out: ``employment.EmployeeDeleted`` (its subscriber ``employment.remove_edges``
removes the person's edges from the graph) and the command ``employment.RunImport``
(run by ``tasks.employment.run_import`` on the ``employment`` queue).
"""
