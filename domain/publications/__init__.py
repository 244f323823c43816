"""Publications: internal news written by the people who may publish, read by its audience.

Owns (tenant databases): publications (title, Markdown body and its sanitised HTML, the
attachments' asset ids, the audience, the schedule and where publishing stands), their
ordered sections, and one delivery row per recipient (the read receipt).

Asks, never reads the tables of: employment (``queries``: everyone, the people of an org
unit with or without its sub-units, which employee ids exist, their work emails), assets
(``queries``: an asset the author can see), identity and IAM (the tenant's members and
their account emails, to map employees to users).

Messages out: the command ``publications.PublishPublication`` (run by
``tasks.publications.publish_publication`` on the ``publications`` queue; recorded by a
publish request or by beat's ``publish_due`` for scheduled ones) and the event
``publications.PublicationPublished``, emitted in parts of at most ``BATCH`` recipients,
each of which its subscriber ``notifications.record_publication_notice`` turns into one
notice per recipient in a transaction of its own.

Public to other contexts: ``queries``, ``services``, ``reading`` and ``errors``.
"""
