mkdir -p private sticky open
echo p > private/f; echo s > setuid; echo x > exec; echo r > readonly; echo g > setgid
chmod 0700 private; chmod 0640 private/f
chmod 1777 sticky; chmod 0777 open
chmod 4755 setuid; chmod 2755 setgid; chmod 0755 exec; chmod 0444 readonly
