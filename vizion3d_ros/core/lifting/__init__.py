"""Lifting 2D instance masks onto 3D points (:mod:`.lift`).

And what the ``visible`` mode builds on: the z-buffer, the border trimming and its surface tests,
background planes, 3D connectivity, and the per-object geometry of the result.
"""
