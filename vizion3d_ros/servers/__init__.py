"""vizion3D-compatible servers: a thin layer over :mod:`vizion3d_ros.core.api`.

- :mod:`.codec`: what every transport shares (request limits, decoding and checking of the uploads and
  options, encoding of results, request errors with their HTTP and gRPC meaning); no framework imports.
- :mod:`.service`: the task with its model kept loaded, safe to call from many threads.
- :mod:`.rest` and :mod:`.rest_main`: the FastAPI app and the ``vizion3d-serve-rest`` command.
- :mod:`.grpc_server` and :mod:`.grpc_main`: vizion3D's ``LiftingService`` (:mod:`.proto`) with health and
  reflection, and the ``vizion3d-serve-grpc`` command.
- :mod:`.serve_cli`: the flags and checks both commands share.
"""
