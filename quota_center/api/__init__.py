"""gRPC servicers of the center: thin adapters between protobuf messages and the services."""
