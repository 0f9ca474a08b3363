echo text > file.txt
mkdir -p dir && echo in > dir/in
echo compressed | gzip -n > notatar.gz
echo "not really a tar" > fake.tar
