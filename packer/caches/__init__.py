"""Packed environments kept to reuse: the local content-addressed store and the remote cache in
an OCI registry. Where the cache lives, and how a store entry is opened, are ``packer.core``'s."""
