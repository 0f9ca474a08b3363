mkdir -p t/d && echo inner > t/d/in.txt
tar --sort=name --owner=0 --group=0 --mtime=@0 -cf archive.tar -C t d && rm -r t
