# Fixed owners, modes and times so that every run makes the same archives.
mkdir -p src/dir
echo one > src/dir/one
echo top > src/top
ln -s top src/link
chmod 0750 src/dir
touch -d 2020-01-01T00:00:00Z src/dir/one src/top src/dir src
tar --numeric-owner --owner=1000 --group=1000 -cf plain.tar -C src .
tar --numeric-owner --owner=0 --group=0 -czf gzipped.tar.gz -C src dir top
tar --numeric-owner --owner=0 --group=0 -cjf bzipped.tar.bz2 -C src top
tar --numeric-owner --owner=0 --group=0 -cJf xzed.tar.xz -C src dir
rm -rf src
