"""vizion3D's ``lifting.proto`` and the Python code generated from it (``make proto`` regenerates it).

The generated modules are committed, so that installing needs no protoc; :mod:`.generate` writes them and
a test checks that the committed ones match the ``.proto``.
"""
