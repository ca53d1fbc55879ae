"""Imported by engage.utils.daemonize; nothing on the deployment path calls it."""
