mkdir -p dir/sub
echo target > file
echo inner > dir/sub/inner
ln -s file link-to-file
ln -s dir link-to-dir
ln -s /etc/passwd absolute-link
ln -s does-not-exist dangling
ln -s ../file dir/up-link
