#!/usr/bin/env bash
# Writes the bundled corpus data/corpus/kjv.txt to stdout: the King James Version from
# Debian's bible-kjv package, as plain text. One document per book (in canonical order, as
# many whole books as fit in 1,900,000 bytes), documents separated by two blank lines ("\n\n\n",
# DataConfig.doc_separator's default). A book is its name, a blank line, then one verse per
# line with chapters separated by one blank line; verse references are dropped, so no run of
# three newlines occurs inside a book.
# Usage: apt-get install -y bible-kjv bible-kjv-text && data/corpus/make_kjv.sh > data/corpus/kjv.txt
set -euo pipefail
export LC_ALL=C
bible -f Gen1:1-Rev22:21 | awk -v budget=1900000 '
BEGIN {
  n = split("Genesis|Exodus|Leviticus|Numbers|Deuteronomy|Joshua|Judges|Ruth|1 Samuel|" \
            "2 Samuel|1 Kings|2 Kings|1 Chronicles|2 Chronicles|Ezra|Nehemiah|Esther|Job|" \
            "Psalms|Proverbs|Ecclesiastes|The Song of Solomon|Isaiah|Jeremiah|Lamentations|" \
            "Ezekiel|Daniel|Hosea|Joel|Amos|Obadiah|Jonah|Micah|Nahum|Habakkuk|Zephaniah|" \
            "Haggai|Zechariah|Malachi|Matthew|Mark|Luke|John|Acts|Romans|1 Corinthians|" \
            "2 Corinthians|Galatians|Ephesians|Philippians|Colossians|1 Thessalonians|" \
            "2 Thessalonians|1 Timothy|2 Timothy|Titus|Philemon|Hebrews|James|1 Peter|" \
            "2 Peter|1 John|2 John|3 John|Jude|Revelation", names, "|")
  book_index = 0; total = 0; done = 0
}
# Emits the finished book if it fits in the budget; after the first that does not, stops.
function flush() {
  if (book == "" || done) return
  sep = (total == 0) ? "" : "\n\n\n"
  if (total + length(sep) + length(book) > budget) { done = 1; return }
  printf "%s%s", sep, book
  total += length(sep) + length(book)
}
{
  ref = $1
  match(ref, /^[0-9]?[A-Za-z]+/)
  abbrev = substr(ref, 1, RLENGTH)
  chapter = substr(ref, RLENGTH + 1); sub(/:.*/, "", chapter)
  text = $0; sub(/^[^ ]+ /, "", text); sub(/ +$/, "", text); gsub(/  +/, " ", text)
  if (abbrev != last_abbrev) {
    flush()
    book_index++
    book = names[book_index]
    last_abbrev = abbrev; last_chapter = ""
  }
  if (chapter != last_chapter) { book = book "\n"; last_chapter = chapter }
  book = book "\n" text
}
END {
  if (book_index != n) { print "make_kjv.sh: expected " n " books, saw " book_index > "/dev/stderr"; exit 1 }
  flush()
  printf "\n"
}'
