mkdir -p dir
echo shared > dir/a
ln dir/a dir/b
ln dir/a c
echo alone > dir/d
