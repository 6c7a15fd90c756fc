"""Views: how each command's result reads for a person (text) or a program (``--json``).

One module per area, mirroring ``services``: a view takes a service's result object (or its
``to_dict()``) and prints it with ``ui.render``; commands in ``cli`` only parse, call a service
and hand the result to a view. Views never compute what a service should have decided.
"""
