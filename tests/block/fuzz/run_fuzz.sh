#!/bin/sh
# run_fuzz.sh FUZZER SECONDS WORKDIR SEEDS: a short libFuzzer run that
# starts from the seed corpus and keeps what it finds in WORKDIR.
set -eu
fuzzer=$1 secs=$2 work=$3 seeds=$4
mkdir -p "$work"
exec "$fuzzer" -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048 \
	-timeout=10 -print_final_stats=1 -artifact_prefix="$work/" \
	"$work" "$seeds"
