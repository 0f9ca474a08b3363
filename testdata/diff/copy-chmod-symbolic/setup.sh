# Modes git does not keep: a plain file, an executable, and a tree with both in a subdirectory.
printf 'file\n' > file
printf 'exe\n' > exe
mkdir -p tree/sub
printf 'in tree\n' > tree/sub/plain
printf 'in tree\n' > tree/sub/run
chmod 644 file tree/sub/plain
chmod 755 exe tree/sub/run tree/sub tree
