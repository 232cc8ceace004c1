"""The one SQLAlchemy `MetaData` every table of the store is declared on.

Tables live next to the feature that owns them (audit trail, alert outbox, requests), and
say what the code reads and writes. The database is created and changed by the revisions in
`bot/store/schema_history/`, which never import these definitions; a test compares the two.
"""

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
