# An archive whose times are what the case checks: sub-second ones (PAX records), one before
# 1970 and one past 2262, on files, a directory and a symlink.
mkdir -p src/dir
echo f > src/frac
echo n > src/neg
echo h > src/huge
echo i > src/dir/in
ln -s frac src/link
touch -d '2001-09-09T01:46:40.25Z' src/frac
touch -d '1969-12-31T23:58:19.5Z' src/neg
touch -d '2300-01-01T00:00:00Z' src/huge
touch -h -d '2010-01-01T00:00:00.125Z' src/link
touch -d '2020-01-01T00:00:00.5Z' src/dir/in src/dir
tar --format=posix --pax-option=delete=atime,delete=ctime --numeric-owner --owner=0 --group=0 \
    -cf times.tar -C src frac neg huge dir link
rm -rf src
