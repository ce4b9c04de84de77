int x86_placeholder;
