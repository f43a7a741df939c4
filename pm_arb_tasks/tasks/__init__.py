"""Thin Celery tasks: decode arguments, call one service, hand the result on."""
