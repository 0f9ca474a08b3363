mkdir -p tree/sub
echo o > tree/owned; echo s > tree/sub/deep
chown -R 1234:5678 tree
chmod 4750 tree/owned
ln tree/owned tree/owned-link
