#!/usr/bin/env bash
echo "fpm test: not written yet" >&2; exit 1
