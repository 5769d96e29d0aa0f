# run by scripts/buildkit-reference.sh in this directory before building (git keeps only 0644/0755 file modes)
chmod 0640 context/dir/sub/x
