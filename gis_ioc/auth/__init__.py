"""Accounts, roles, keys, sessions and the audit trail (issue 7).

Accounts change only on a written request (:class:`~gis_ioc.auth.accounts.RequestRef`), which is
stored with the change and in the audit trail; the audit trail is append-only and hash-chained.
"""
