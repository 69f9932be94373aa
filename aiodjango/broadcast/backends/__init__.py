"""Broadcast backends: ``memory.MemoryBroadcast`` (one process) and ``redis.RedisBroadcast``."""
