"""Stand-in for genforma's engage_utils: Datablox's ci/engage_real/engage_utils/, packed by ci/engage-real.sh."""
