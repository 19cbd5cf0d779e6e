"""`nox -s chaos`: N Tasks in flight on the full local cluster while one fault at a time
hits the API server, etcd, the operator or the network between them."""
