# run by scripts/buildkit-reference.sh in this directory before building (git keeps no dir modes)
chmod 0700 context/dir/sub
