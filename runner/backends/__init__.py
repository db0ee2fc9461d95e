"""Engines that run a plan's tasks somewhere other than this process's own workers."""
