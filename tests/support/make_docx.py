"""Writes a .docx the way Japanese Word does, with python-docx: built-in styles keep their
English *names* (`heading 1`) under other style ids (`1`, `2`, `a3`), a localised custom style
name (`見出し 2`), a hyperlink (w:hyperlink) and a HYPERLINK field, keywords as tags.

usage: make_docx.py OUT.docx
"""
import sys

from docx import Document
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.opc.constants import RELATIONSHIP_TYPE as RT

doc = Document()
# Japanese Word's ids for the built-in styles.
doc.styles["Heading 1"].style_id = "1"
doc.styles["Title"].style_id = "a3"
sub = doc.styles.add_style("見出し 2", WD_STYLE_TYPE.PARAGRAPH)
sub.style_id = "20"
sub.base_style = doc.styles["Normal"]
doc.core_properties.keywords = "親権、面会交流"


def hyperlink(paragraph, url, text):
    r_id = paragraph.part.relate_to(url, RT.HYPERLINK, is_external=True)
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), r_id)
    run = OxmlElement("w:r")
    t = OxmlElement("w:t")
    t.text = text
    run.append(t)
    link.append(run)
    paragraph._p.append(link)


def field_link(paragraph, url, text):
    def fld(kind):
        r = OxmlElement("w:r")
        c = OxmlElement("w:fldChar")
        c.set(qn("w:fldCharType"), kind)
        r.append(c)
        paragraph._p.append(r)

    fld("begin")
    r = OxmlElement("w:r")
    instr = OxmlElement("w:instrText")
    instr.text = f' HYPERLINK "{url}" '
    r.append(instr)
    paragraph._p.append(r)
    fld("separate")
    paragraph.add_run(text)
    fld("end")


doc.add_paragraph("面会交流の始め方", style="Title")
doc.add_paragraph("別居中でも、子どもと親の交流は続けられます。")
doc.add_paragraph("1.取り決めること", style="Heading 1")
p = doc.add_paragraph("詳しくは")
hyperlink(p, "https://www.courts.go.jp/", "裁判所のページ")
p.add_run("と")
field_link(p, "https://www.moj.go.jp/", "法務省のページ")
p.add_run("をご覧ください。")
doc.add_paragraph("(1)頻度と時間", style="見出し 2")
p = doc.add_paragraph()
p.add_run("月1回").italic = True
p.add_run("から始める方が")
p.add_run("多い").bold = True
p.add_run("です。")
doc.add_paragraph("頻度", style="List Number")
doc.add_paragraph("受け渡しの場所", style="List Number")
doc.add_paragraph("2.困ったとき", style="Heading 1")
doc.add_paragraph("調停で話し合うことができます。")
doc.add_paragraph("編集後記", style="Heading 1")
doc.add_paragraph("寒くなりました。")
doc.save(sys.argv[1])
