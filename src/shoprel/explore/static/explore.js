// Judging and the teacher's scores for live search; everything else is plain HTML.
"use strict";

function headers() {
  const result = { "Content-Type": "application/json" };
  const key = document.getElementById("api-key");
  if (key && key.value) result.Authorization = "Bearer " + key.value;
  return result;
}

async function postJson(path, body) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
  return data;
}

async function judge(event) {
  event.preventDefault();
  const form = event.target;
  const status = form.querySelector("output");
  const rater = document.getElementById("rater");
  status.className = "status";
  status.textContent = "saving…";
  try {
    const data = await postJson("/api/judgments", {
      query: form.dataset.query,
      product_id: form.dataset.product,
      grade: form.elements.grade.value,
      rater: (rater && rater.value) || "anonymous",
      judgment_id: form.dataset.id,
    });
    form.dataset.id = data.next_id;  // grading again is a new judgment
    status.className = "status ok";
    status.textContent = "saved";
  } catch (error) {
    status.className = "status error";
    status.textContent = error.message;  // the id is kept: a retry is not a second judgment
  }
}

async function teacherScores() {
  const table = document.getElementById("hits");
  if (!table) return;
  const rows = [...table.querySelectorAll("tbody tr")];
  const status = document.getElementById("teacher-status");
  status.innerHTML = '<span class="spinner"></span> ';
  status.append("the teacher is scoring " + rows.length + " items…");
  try {
    const data = await postJson("/api/teacher-scores", {
      query: table.dataset.query,
      product_ids: rows.map((row) => row.dataset.product),
    });
    for (const row of rows) {
      const score = data.scores[row.dataset.product];
      row.querySelector(".teacher").textContent = score === undefined ? "–" : score.toFixed(3);
    }
    status.textContent = "teacher: " + data.teacher;
  } catch (error) {
    status.textContent = "teacher scores failed: " + error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.judge")) form.addEventListener("submit", judge);
  teacherScores();
});
