"""corecache-warm: copy the keys that move when a ketama ring changes from
their old owners to their new ones, through the memcached protocol."""
