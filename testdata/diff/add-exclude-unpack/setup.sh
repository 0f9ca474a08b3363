# Fixed owners, modes and times so that every run makes the same archive and files.
mkdir -p src files/sub
echo kept > src/kept
touch -d 2020-01-01T00:00:00Z src/kept src
tar --numeric-owner --owner=0 --group=0 -cf archive.tar -C src .
rm -rf src
echo keep > files/keep.txt
echo drop > files/drop.log
echo nested > files/sub/nested.log
