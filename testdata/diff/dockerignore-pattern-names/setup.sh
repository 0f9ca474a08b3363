# Names with glob characters are awkward in git on some systems; make them here.
mkdir -p 'dir*star' 'q?mark' '[x]'
echo star > 'dir*star/f'
echo q > 'q?mark/f'
echo bracket > '[x]/f'
echo brace > 'a{b,c}'
echo ignored > 'ignore me.txt'
printf 'ignore\\ me.txt\n' > .dockerignore
