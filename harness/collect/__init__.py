"""Evidence from guests and hosts: SSH (``ssh.py``, the only paramiko user), the fixed
command set (``commands.py``) and the serial console watcher (``console.py``)."""
