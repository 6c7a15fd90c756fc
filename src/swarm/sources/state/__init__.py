"""The state directory as a source: a walk that never follows a symlink, and consistent file
reads (``walk``, ``FileRead``), plus the one write a state restore needs besides the tree store's
(``link_in``: a hard link created without following any symlink). The decisions (what to leave
out, which secrets to recognise, when to trust the change cache) are ``swarm.model.state``.

May import: swarm.model, swarm.errors, swarm.clock, swarm.config.
"""
from swarm.sources.state.fs import FileRead, Item, NotRegular, facts_of, link_in, read_back, walk

__all__ = ["FileRead", "Item", "NotRegular", "facts_of", "link_in", "read_back", "walk"]
