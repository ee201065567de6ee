# mk/embed.mk: text files compiled into the libraries as C strings, so the programs need no
# data files at run time. $(call embed_lines,FILE) prints FILE as C string literals, one line
# each ("...\n", backslashes and quotes escaped), for a recipe that writes a generated .c file.
embed_lines = sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/  "/' -e 's/$$/\\n"/' $(1)
