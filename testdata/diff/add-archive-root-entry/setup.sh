# Archives whose root entry says 0700, owner 123:456 and 2001: named `./` (as `tar -C src .`
# writes it) and `/` (kept with -P).
mkdir -p src
echo f > src/f
chmod 0700 src
touch -d 2001-01-01T00:00:00Z src/f src
tar --numeric-owner --owner=123 --group=456 -cf dotslash.tar -C src .
tar --numeric-owner --owner=123 --group=456 -P --transform='s,^\.$,/,;s,^\./,,' \
    -cf slash.tar -C src .
rm -rf src
