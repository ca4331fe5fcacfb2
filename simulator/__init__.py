"""A Durham-like city for ``heart up``: CAD feed, responder apps and care navigators."""
