"""Use cases, one module per verb. They combine repo, sources and platform, return result
objects and never print; progress goes to an injected ``Reporter``.

May import everything below it; nothing here imports swarm.cli or swarm.ui.
"""
