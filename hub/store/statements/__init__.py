"""Named SQL statements, one module per concern of the store (the\nstore module that owns the tables runs them)."""
