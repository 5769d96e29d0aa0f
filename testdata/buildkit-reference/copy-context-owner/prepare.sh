# run by scripts/buildkit-reference.sh in this directory before building (git keeps no owners or dir modes)
chown 1234:1234 context/owned.txt
chmod 0604 context/owned.txt
chown -R 5678:5678 context/dir
chmod 0750 context/dir
chmod 4755 context/dir/inner.txt
