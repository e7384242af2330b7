"""The SQLAlchemy Core `Table` behind a SQLModel table class, typed for Core queries."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel


def table_of(model: type[SQLModel]) -> sa.Table:
    """`model.__table__`, which SQLModel sets on every `table=True` class without declaring it.

    Engine modules write Core statements (insert, update, select on `.c`) against it; raises
    TypeError for a class that is not mapped to a table.
    """
    table = sa.inspect(model).local_table
    if not isinstance(table, sa.Table):
        raise TypeError(f"{model.__name__} is not a SQLModel table class (table=True)")
    return table
