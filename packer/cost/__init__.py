"""What a packed model costs to serve, measured in the server verify starts: latency and
throughput under load, each stub's memory, the /dev/shm its regions reach, and the time to
READY split into unpacking, stub start and initialize()."""
