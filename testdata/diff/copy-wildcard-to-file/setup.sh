# Names git keeps badly on some systems: `?` and `[`.
mkdir -p 'app/n?pe' 'app/[x]'
echo literal > 'app/n?pe/file.txt'
echo bracket > 'app/[x]/f'
